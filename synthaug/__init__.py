"""synthaug: shared code of the pipeline's stages (params schema, offline set-up, image I/O)."""
