"""The embedded world: small real models trained on scikit-learn's digits, for the default run and the tests."""
