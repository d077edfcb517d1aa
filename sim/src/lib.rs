//! flowcat-sim: a Duo API simulator, an independent implementation of Duo's side.
