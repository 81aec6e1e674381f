"""The model store: roots on NFS or local disk as one catalog, and the default model."""
