"""Training, export and evaluation of the models the service serves (``python -m training``)."""
