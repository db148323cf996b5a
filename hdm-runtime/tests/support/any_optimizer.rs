//! Any of the optimizers, so that one table of cases can drive them all, and `with_optimizer!`
//! to run generic code on the one inside.
#![allow(dead_code)]

use hdm_runtime::optim::{AdaGrad, Adam, AdamW, Hdm, PathSgd, RmsProp, Sgd};

#[derive(Debug)]
pub enum Any {
    Sgd(Sgd),
    AdaGrad(AdaGrad),
    RmsProp(RmsProp),
    Adam(Adam),
    AdamW(AdamW),
    Hdm(Hdm),
    PathSgd(PathSgd),
}

/// `with_optimizer!(&any, o => body)` runs `body` with `o` bound to the optimizer inside `any`.
#[macro_export]
macro_rules! with_optimizer {
    ($any:expr, $o:ident => $body:expr) => {
        match $any {
            Any::Sgd($o) => $body,
            Any::AdaGrad($o) => $body,
            Any::RmsProp($o) => $body,
            Any::Adam($o) => $body,
            Any::AdamW($o) => $body,
            Any::Hdm($o) => $body,
            Any::PathSgd($o) => $body,
        }
    };
}
