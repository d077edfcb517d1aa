//! flowcat-engine: the flow model, loading, validation and compiling to a DAG.
