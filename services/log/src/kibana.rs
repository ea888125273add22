//! Kibana saved objects (filled in below).
