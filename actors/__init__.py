"""Ray actors of the platform (thin layers over the plain-Python core in ``predator``)."""
