//! JSON request, response and event frames.
