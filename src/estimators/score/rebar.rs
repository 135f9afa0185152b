//! REBAR placeholder.
