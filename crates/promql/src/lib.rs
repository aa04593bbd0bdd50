//! PromQL engine (work in progress by a helper).
