//! Campus content platform (chapter 1 of the design): the posts API with a transactional outbox,
//! the AI inspector, and the Redis, MongoDB and Elasticsearch projections.
//!
//! ```text
//! POST/PUT/DELETE /posts ─► MySQL posts + outbox ─(relay)─► post.original
//!   post.original ─► inspect (OpenAI) ─► post.inspected
//!   post.inspected ─► cache ─► Redis   post:{id}        ◄─ GET /posts/{id}/detail (MySQL on a miss)
//!   post.inspected ─► inbox ─► MongoDB inbox            ◄─ GET /list/inbox/{userId}
//!   post.inspected ─► index ─► Elasticsearch posts      ◄─ GET /list/search
//! ```

pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod events;
pub mod inbox;
pub mod index;
pub mod inspect;
pub mod worker;
