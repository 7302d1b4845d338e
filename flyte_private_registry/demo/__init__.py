"""The end-to-end demo: a local authenticated registry, a push through the library, pull secrets, a pull back."""
