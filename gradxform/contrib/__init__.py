"""Optional glue between gradxform and other libraries.

Each module here imports the library it connects to, so import it only where that library is
installed; ``import gradxform`` itself never does. gradxform's runtime dependencies stay jax,
jaxlib and numpy.
"""
