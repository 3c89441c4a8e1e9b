//! The `/review` web page (filled in below).
