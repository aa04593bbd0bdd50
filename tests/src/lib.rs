//! Shared helpers for Strata's end-to-end tests.
