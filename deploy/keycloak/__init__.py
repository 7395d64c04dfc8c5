"""The identity provider: the project's own Keycloak (`local.py`), its realm (`realm-icc.json`) and
the admin calls the project needs (`admin.py`)."""
