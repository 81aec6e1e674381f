"""The model store: roots on NFS or local disk as one catalog, and the default model.

`resolve_model(name, roots)` turns a deployment's `model:` into the folder an engine loads
(the pipeline's prepare step calls it through `recipes/render.py`);
`store_roots(config, home)` gives the fleet's roots.
"""

from corral.store.resolve import resolve_model
from corral.store.roots import store_roots

__all__ = ["resolve_model", "store_roots"]
