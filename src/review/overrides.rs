//! Agents' overrides in Plain and Pylon, taken as verdicts (filled in below).
