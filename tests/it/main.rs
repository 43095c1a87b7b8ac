//! airlock's integration tests: one binary, driving the real `airlock`
//! against an in-process fake upstream. See `support/`.

mod support;

mod admission;
mod advisories;
mod architecture;
mod bundles;
mod day_two;
mod e2e;
mod fail_closed;
mod faults;
mod first_run;

mod fuzz;
mod golden;
mod mirror;
mod nightly;
mod object_stores;
mod pages;
mod provenance;
mod publishing;
mod resolve;
mod scale;
mod scan;
mod security;
mod snapshots;
