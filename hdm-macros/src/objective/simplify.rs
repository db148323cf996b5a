//! Simplify: the algebra applied to every node the differentiator builds, so that the zeros and
//! ones of the chain rule never reach the generated code.
//!
//! Each constructor looks at its operands (already simplified) and returns an equivalent,
//! simpler node when a rule applies, else builds the node as asked:
//!
//! | rule | |
//! |---|---|
//! | constant folding | `2 * 3 -> 6`, `sin(0) -> 0` (only when the result is finite) |
//! | identities | `a + 0 -> a`, `a - 0 -> a`, `0 - a -> -a`, `a * 1 -> a`, `a / 1 -> a`, `a.powi(1) -> a`, `a.powf(1) -> a` |
//! | zeros | `a * 0 -> 0`, `0 / a -> 0`, `a - a -> 0`, `a.powi(0) -> 1`, `a.powf(0) -> 1` |
//! | signs | `-(-a) -> a`, `-(a - b) -> b - a`, `-(c * a) -> (-c) * a`, `a + (-b) -> a - b`, `a - (-b) -> a + b`, `(-a) * b -> -(a * b)`, `a * -1 -> -a` |
//! | like terms | `a + a -> 2 * a` |
//! | constants first | `a * 2 -> 2 * a`, `2 * (3 * a) -> 6 * a` |
//! | one order for products | `b * a -> a * b` when `a` was built first |
//!
//! The rules are the usual real-number identities. Two of them are not IEEE identities at
//! infinities and NaN (`a * 0 -> 0`, `a - a -> 0`): where an operand is not finite, the value the
//! function itself returns is already not finite, and [`minimize`] stops there.
//!
//! [`minimize`]: https://docs.rs/hdm/latest/hdm/scalar/fn.minimize.html

use super::ir::{Func, Graph, Id, Node};

impl Graph {
    /// A literal for `value` if it is finite.
    fn fold(&mut self, value: f64) -> Option<Id> {
        value.is_finite().then(|| self.lit(value))
    }

    pub fn neg(&mut self, a: Id) -> Id {
        if let Some(x) = self.value(a) {
            return self.lit(-x);
        }
        match self.nodes[a] {
            Node::Neg(b) => b,
            Node::Sub(b, c) => self.sub(c, b),
            Node::Mul(c, b) if self.value(c).is_some() => {
                let minus_c = self.lit(-self.value(c).expect("matched a literal"));
                self.mul(minus_c, b)
            }
            _ => self.node(Node::Neg(a)),
        }
    }

    /// `-c * d` as `(c, d)` with `c > 0`, for turning `a + (-2 * d)` into `a - 2 * d`.
    fn negative_term(&self, id: Id) -> Option<(f64, Id)> {
        match self.nodes[id] {
            Node::Mul(c, d) => self.value(c).filter(|&c| c < 0.0).map(|c| (-c, d)),
            _ => None,
        }
    }

    pub fn add(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => {
                if let Some(id) = self.fold(x + y) {
                    return id;
                }
            }
            (Some(0.0), _) => return b,
            (_, Some(0.0)) => return a,
            (_, Some(y)) if y < 0.0 => {
                let minus = self.lit(-y);
                return self.sub(a, minus);
            }
            _ => {}
        }
        if let Node::Neg(c) = self.nodes[b] {
            return self.sub(a, c);
        }
        if let Node::Neg(c) = self.nodes[a] {
            return self.sub(b, c);
        }
        if let Some((c, d)) = self.negative_term(b) {
            let c = self.lit(c);
            let term = self.mul(c, d);
            return self.sub(a, term);
        }
        if a == b {
            let two = self.lit(2.0);
            return self.mul(two, a);
        }
        self.node(Node::Add(a, b))
    }

    pub fn sub(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => {
                if let Some(id) = self.fold(x - y) {
                    return id;
                }
            }
            (_, Some(0.0)) => return a,
            (Some(0.0), _) => return self.neg(b),
            (_, Some(y)) if y < 0.0 => {
                let minus = self.lit(-y);
                return self.add(a, minus);
            }
            _ => {}
        }
        if a == b {
            return self.lit(0.0);
        }
        if let Node::Neg(c) = self.nodes[b] {
            return self.add(a, c);
        }
        if let Some((c, d)) = self.negative_term(b) {
            let c = self.lit(c);
            let term = self.mul(c, d);
            return self.add(a, term);
        }
        self.node(Node::Sub(a, b))
    }

    pub fn mul(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => {
                if let Some(id) = self.fold(x * y) {
                    return id;
                }
            }
            (Some(0.0), _) => return self.lit(0.0),
            (_, Some(0.0)) => return self.lit(0.0),
            (Some(1.0), _) => return b,
            (_, Some(1.0)) => return a,
            (Some(-1.0), _) => return self.neg(b),
            (_, Some(-1.0)) => return self.neg(a),
            (None, Some(_)) => return self.mul(b, a),
            (Some(x), None) => {
                if let Node::Mul(c, d) = self.nodes[b] {
                    if let Some(product) = self.value(c).map(|y| x * y).filter(|p| p.is_finite()) {
                        let product = self.lit(product);
                        return self.mul(product, d);
                    }
                }
            }
            (None, None) => {}
        }
        if let Node::Neg(c) = self.nodes[a] {
            let product = self.mul(c, b);
            return self.neg(product);
        }
        if let Node::Neg(c) = self.nodes[b] {
            let product = self.mul(a, c);
            return self.neg(product);
        }
        // Products of two non-literals in one order (the older node first), so that `a * b` and
        // `b * a` are one node and `a' * a + a * a'` becomes `2 * (a * a')`.
        if self.value(a).is_none() && a > b {
            return self.node(Node::Mul(b, a));
        }
        self.node(Node::Mul(a, b))
    }

    pub fn div(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (Some(x), Some(y)) => {
                if let Some(id) = self.fold(x / y) {
                    return id;
                }
            }
            (Some(0.0), _) => return self.lit(0.0),
            (_, Some(1.0)) => return a,
            (_, Some(-1.0)) => return self.neg(a),
            _ => {}
        }
        if let Node::Neg(c) = self.nodes[a] {
            let quotient = self.div(c, b);
            return self.neg(quotient);
        }
        if let Node::Neg(c) = self.nodes[b] {
            let quotient = self.div(a, c);
            return self.neg(quotient);
        }
        self.node(Node::Div(a, b))
    }

    pub fn powi(&mut self, a: Id, n: i32) -> Id {
        match n {
            0 => self.lit(1.0),
            1 => a,
            _ => match self.value(a).and_then(|x| self.fold(x.powi(n))) {
                Some(id) => id,
                None => self.node(Node::Powi(a, n)),
            },
        }
    }

    pub fn powf(&mut self, a: Id, b: Id) -> Id {
        match (self.value(a), self.value(b)) {
            (_, Some(0.0)) => self.lit(1.0),
            (_, Some(1.0)) => a,
            (Some(x), Some(y)) => match self.fold(x.powf(y)) {
                Some(id) => id,
                None => self.node(Node::Powf(a, b)),
            },
            _ => self.node(Node::Powf(a, b)),
        }
    }

    pub fn call(&mut self, func: Func, a: Id) -> Id {
        match self.value(a).and_then(|x| self.fold(func.eval(x))) {
            Some(id) => id,
            None => self.node(Node::Call(func, a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_folding() {
        let mut g = Graph::default();
        let x = g.node(Node::Var(0));
        let (zero, one, two, three) = (g.lit(0.0), g.lit(1.0), g.lit(2.0), g.lit(3.0));
        assert_eq!(g.add(x, zero), x);
        assert_eq!(g.mul(one, x), x);
        assert_eq!(g.mul(x, zero), zero);
        assert_eq!(g.sub(x, x), zero);
        let six = g.lit(6.0);
        assert_eq!(g.mul(two, three), six);
        // Constants move to the front and combine.
        let two_x = g.mul(x, two);
        assert_eq!(g.nodes[two_x], Node::Mul(two, x));
        let six_x = g.mul(three, two_x);
        assert_eq!(g.nodes[six_x], Node::Mul(six, x));
        // Signs.
        let minus_x = g.neg(x);
        assert_eq!(g.neg(minus_x), x);
        let y = g.node(Node::Var(1));
        let minus_y = g.neg(y);
        let x_minus_y = g.add(x, minus_y);
        assert_eq!(g.nodes[x_minus_y], Node::Sub(x, y));
        let y_minus_x = g.neg(x_minus_y);
        assert_eq!(g.nodes[y_minus_x], Node::Sub(y, x));
        assert_eq!(g.add(x, x), two_x);
        // Folding stops short of infinities.
        let q = g.div(one, zero);
        assert_eq!(g.nodes[q], Node::Div(one, zero));
        let s = g.call(Func::Sqrt, zero);
        assert_eq!(s, zero);
    }
}
