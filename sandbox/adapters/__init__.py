"""One module per external system; the only code that touches it."""
