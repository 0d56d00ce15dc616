"""The studies' experiment logic, one module per study notebook."""
