//! loom models of shmsync protocols.
