"""The portal's pages, one module per kind of work (a module with a `router` is included)."""
