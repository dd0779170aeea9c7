fn main() {
    earl_build::link_libtorch();
}
