pub mod rpmbuild;
pub mod upgrader;
