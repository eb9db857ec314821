"""gluon.model_zoo: placeholder until its layers land."""
