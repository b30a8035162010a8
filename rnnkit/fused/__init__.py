"""Fast paths: when they apply (``predicates``), the kernels (``kernels``), layouts (``convert``)."""
