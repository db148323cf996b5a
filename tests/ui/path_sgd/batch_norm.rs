use hdm::prelude::*;

#[network(input = [1, 8, 8], loss = softmax_cross_entropy)]
struct Net {
    conv: Conv2d<1, 4, 3>,
    bn: BatchNorm2d<4>,
    act: Relu,
    flat: Flatten,
    fc: Linear<144, 10>,
}

fn main() {
    let model = Net::<f32>::init(0);
    let _trainer = model.trainer(PathSgd::new(0.1), 10);
}
