"""The REST server: `serving.app.create_app(model_ref, settings)` and `serving.settings.ServeSettings`.

This package imports nothing itself, so that `modelyard --help` does not load the server and its model stack.
"""
