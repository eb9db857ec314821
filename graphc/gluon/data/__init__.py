"""gluon.data: placeholder until its layers land."""
