/// A point.
pub struct Point { x: i32 }
impl Point {
    /// New point.
    pub fn new(x: i32) -> Self { Point { x } }
}
pub trait Shape { fn area(&self) -> f64; }
enum E { A }
const LIMIT: usize = 5;
mod inner { fn f() {} }
macro_rules! m { () => {} }
