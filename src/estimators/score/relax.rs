//! RELAX placeholder.
