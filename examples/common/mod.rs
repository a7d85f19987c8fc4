pub mod rpmbuild;
