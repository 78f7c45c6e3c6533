"""The catalog: artifacts.yaml (``entries``), its JSON Schema (``schema``) and its lint (``lint``).

Submodules are imported on demand so that loading a model needs neither jsonschema nor ruamel.
"""
