"""gluon.rnn: placeholder until its layers land."""
