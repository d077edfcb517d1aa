//! Duo: request signing, secrets and the retry schedule of the official clients.
