//! The `med-crossvit` command-line tool.

fn main() {
    println!("med-crossvit {}", env!("CARGO_PKG_VERSION"));
}
