"""Hardware models: processing elements (``pe/``) and array timing."""
