"""The bundled demo estate (data for `botwatch demo`)."""
