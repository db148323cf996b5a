//! Expansion of generated networks of any depth: a chain of `Linear` + `Relu` and the same
//! network written as a `forward` closure. The checks are on the generated code's structure; the
//! `#[ignore]`d `expansion_time` prints how long each phase takes and asserts nothing about time:
//!
//! ```text
//! cargo test -p hdm-macros --release -- --ignored --nocapture expansion_time
//! ```
//!
//! These run on proc-macro2's own token streams, outside the compiler; inside rustc every token
//! operation crosses the proc-macro bridge, so `benches/compile_time.sh` measures the macro in a
//! real build as well.

use std::time::Instant;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{ast, check, codegen, errors, expand, grad, ir, path, plan};

/// Hidden width of the generated networks; the first layer takes 784 inputs, the last gives 10.
const WIDTH: usize = 64;

fn sizes(layers: usize) -> Vec<(usize, usize)> {
    (0..layers).map(|i| (if i == 0 { 784 } else { WIDTH }, if i + 1 == layers { 10 } else { WIDTH })).collect()
}

/// `#[network(loss = softmax_cross_entropy)] struct Chain4 { fc0: Linear<784, 64>, act0: Relu, ..., fcN: Linear<64, 10> }`.
fn chain(layers: usize) -> (TokenStream, TokenStream) {
    let fields = sizes(layers).into_iter().enumerate().map(|(i, (n_in, n_out))| {
        let (fc, act) = (format_ident!("fc{}", i), format_ident!("act{}", i));
        let (n_in, n_out) =
            (proc_macro2::Literal::usize_unsuffixed(n_in), proc_macro2::Literal::usize_unsuffixed(n_out));
        if i + 1 == layers {
            quote!(#fc: Linear<#n_in, #n_out>,)
        } else {
            quote!(#fc: Linear<#n_in, #n_out>, #act: Relu,)
        }
    });
    let name = format_ident!("Chain{}", layers);
    (quote!(loss = softmax_cross_entropy), quote!(struct #name { #(#fields)* }))
}

/// The same network as a `forward` closure: `|x| { let h0 = relu(fc0(x)); ...; fcN(hN-1) }`.
fn graph(layers: usize) -> (TokenStream, TokenStream) {
    let mut lets = Vec::new();
    let mut prev = format_ident!("x");
    for i in 0..layers - 1 {
        let (fc, h) = (format_ident!("fc{}", i), format_ident!("h{}", i));
        lets.push(quote!(let #h = relu(#fc(#prev));));
        prev = h;
    }
    let last = format_ident!("fc{}", layers - 1);
    let fields = sizes(layers).into_iter().enumerate().map(|(i, (n_in, n_out))| {
        let fc = format_ident!("fc{}", i);
        let (n_in, n_out) =
            (proc_macro2::Literal::usize_unsuffixed(n_in), proc_macro2::Literal::usize_unsuffixed(n_out));
        quote!(#fc: Linear<#n_in, #n_out>,)
    });
    let name = format_ident!("Graph{}", layers);
    (
        quote!(loss = softmax_cross_entropy, forward = |x| { #(#lets)* #last(#prev) }),
        quote!(struct #name { #(#fields)* }),
    )
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A chain of `layers` dense layers: one GEMM per layer forward, a weight gradient per layer and
/// (beside it) an input gradient per layer, the first layer's only when the caller asks for the
/// gradient of the network's input; every bias summed in the activation's backward
/// pass except the last layer's; two tensors reported ready per layer, last layer first.
fn assert_dense_chain(out: &TokenStream, layers: usize) {
    let text = out.to_string();
    assert!(!text.contains("compile_error"), "{text}");
    syn::parse2::<syn::File>(out.clone()).expect("the expansion is valid Rust");
    // Forward: one product per layer. Backward: a weight gradient per layer, run beside an input
    // gradient for every layer, the first one's guarded.
    assert_eq!(count(&text, "pool . gemm (T :: one ()"), layers, "{text}");
    assert_eq!(count(&text, ":: hdm :: network :: linear_grads ("), layers, "{text}");
    assert_eq!(count(&text, ":: core :: option :: Option :: Some ((MatMut :: row_major (& mut b ."), layers, "{text}");
    assert_eq!(
        count(&text, "if input_grad { :: core :: option :: Option :: Some ((MatMut :: row_major (& mut b . d_x ,"),
        1,
        "{text}"
    );
    assert_eq!(count(&text, "par :: bias_act (pool , MatMut"), layers, "{text}");
    assert_eq!(count(&text, "par :: act_backward_in_place_bias (pool ,"), layers - 1, "{text}");
    assert_eq!(count(&text, "par :: column_sums (pool ,"), 1, "{text}");
    assert_eq!(count(&text, "hook . ready ("), 2 * layers, "{text}");
    // Each weight, used once, may go to the hook as an outer product in place of `ready`.
    assert_eq!(count(&text, "let outer = params && hook . updates_outer (n) ;"), layers, "{text}");
    assert_eq!(count(&text, "if outer { hook . ready_outer ("), layers, "{text}");
    assert_eq!(count(&text, "if ! hook . updates_outer (n) { hook . ready ("), layers, "{text}");
    let last = format!("hook . ready ({} , grads . fc{} . weight_slice ())", 2 * (layers - 1), layers - 1);
    let first = "hook . ready (0 , grads . fc0 . weight_slice ())";
    let (last_at, first_at) = (text.find(&last).expect("last layer ready"), text.find(first).expect("first ready"));
    assert!(layers == 1 || last_at < first_at, "the backward pass runs from the last layer to the first");
    assert!(text.contains(&format!("const TENSORS : usize = {}", 2 * layers)), "{text}");
}

#[test]
fn deep_chains_and_graphs_expand_to_one_dense_step_per_layer() {
    for layers in [1, 4, 32] {
        let (args, input) = chain(layers);
        assert_dense_chain(&expand(args, input), layers);
        if layers > 1 {
            let (args, input) = graph(layers);
            assert_dense_chain(&expand(args, input), layers);
        }
    }
}

/// Milliseconds of each phase of `expand`, the median of several runs.
fn phase_times(args: &TokenStream, input: &TokenStream) -> [f64; 6] {
    let runs = 30;
    let mut times: Vec<[f64; 6]> = Vec::new();
    for _ in 0..runs + 3 {
        let (args, input) = (args.clone(), input.clone());
        let t0 = Instant::now();
        let mut errs = errors::Errors::default();
        let net = ast::parse(args, input, &mut errs).expect("a struct");
        let t1 = Instant::now();
        let checked = check::check(&net, &mut errs).expect("a valid network");
        let t2 = Instant::now();
        let graph = ir::lower(checked);
        let steps = grad::backward(&graph);
        let plan = plan::plan(&graph, steps);
        let path = path::plan(&graph);
        let t3 = Instant::now();
        let out = codegen::generate(&net, &graph, &plan, &path);
        let t4 = Instant::now();
        let text = out.to_string();
        let t5 = Instant::now();
        assert!(!text.is_empty());
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        times.push([ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t0, t4), ms(t4, t5)]);
    }
    let times = &times[3..];
    std::array::from_fn(|k| {
        let mut v: Vec<f64> = times.iter().map(|t| t[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    })
}

/// Prints the time of each phase of the macro for 4- and 32-layer networks (and 128, to show how
/// it grows). Ignored: it measures, it does not test.
///
/// With `HDM_DUMP_EXPANSIONS=DIR`, it also writes each network's source, `DIR/chain32.rs`, and
/// the macro's output for it, `DIR/chain32_expanded.rs`, which `benches/compile_time.sh` compiles
/// to tell the macro's own time from the compiler's work on what it emits.
#[test]
#[ignore]
fn expansion_time() {
    let dump = std::env::var_os("HDM_DUMP_EXPANSIONS").map(std::path::PathBuf::from);
    println!(
        "\n{:<8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>9}",
        "network", "layers", "parse_ms", "check_ms", "plan_ms", "codegen_ms", "total_ms", "to_string_ms", "tokens_kB"
    );
    for layers in [4, 32, 128] {
        for (kind, (args, input)) in [("chain", chain(layers)), ("graph", graph(layers))] {
            let t = phase_times(&args, &input);
            let expanded = expand(args.clone(), input.clone()).to_string();
            if let Some(dir) = &dump {
                let name = format!("{kind}{layers}");
                let source = format!("#[network({args})]\n{input}\n");
                std::fs::write(dir.join(format!("{name}.rs")), source).expect("write the network's source");
                std::fs::write(dir.join(format!("{name}_expanded.rs")), &expanded).expect("write the expansion");
            }
            let size = expanded.len();
            println!(
                "{:<8} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>12.3} {:>9.1}",
                kind,
                layers,
                t[0],
                t[1],
                t[2],
                t[3],
                t[4],
                t[5],
                size as f64 / 1e3
            );
        }
    }
}

/// A convolutional network expands to one call per layer and pass: each convolution's forward
/// pass (its activation fused), its backward pass (beside the bias gradient summed in the
/// activation's pass), batch normalisation fused with its activation both ways, pooling, and a
/// flatten that is no operation at all.
#[test]
fn a_convolutional_network_expands_to_one_call_per_layer_and_pass() {
    let args = quote!(input = [1, 28, 28], loss = softmax_cross_entropy);
    let input = quote! {
        struct LeNet {
            conv1: Conv2d<1, 32, 5, 1, 2>,
            act1: Relu,
            pool1: MaxPool2d<2>,
            conv2: Conv2d<32, 64, 5, 1, 2>,
            bn2: BatchNorm2d<64>,
            act2: Relu,
            pool2: MaxPool2d<2>,
            flat: Flatten,
            fc: Linear<3136, 10>,
        }
    };
    let out = expand(args, input);
    let text = out.to_string();
    assert!(!text.contains("compile_error"), "{text}");
    syn::parse2::<syn::File>(out.clone()).expect("the expansion is valid Rust");
    assert_eq!(count(&text, ":: hdm :: conv :: forward ("), 2, "{text}");
    assert_eq!(count(&text, ":: hdm :: conv :: backward ("), 2, "{text}");
    assert_eq!(count(&text, "Conv2dGeometry :: new ([1 , 28 , 28] , 32 , 5 , 1 , 2)"), 3, "forward, backward, scratch");
    assert_eq!(count(&text, ":: hdm :: norm :: forward ("), 1, "{text}");
    assert_eq!(count(&text, ":: hdm :: norm :: backward_act ("), 1, "BatchNorm's backward pass takes ReLU's: {text}");
    assert_eq!(count(&text, ":: hdm :: pooling :: max_forward ("), 2, "{text}");
    assert_eq!(count(&text, ":: hdm :: pooling :: max_backward ("), 2, "{text}");
    assert_eq!(count(&text, "par :: act_backward_in_place_channel_bias (pool ,"), 1, "{text}");
    assert_eq!(count(&text, "par :: channel_sums (pool ,"), 1, "conv2's bias under BatchNorm: {text}");
    assert!(text.contains("const INPUT_SHAPE : & 'static [usize] = & [1 , 28 , 28]"), "{text}");
    assert!(text.contains("self . bn2 . update_running_stats (& b . bn2_batch_stats , n * 196)"), "{text}");
    assert!(text.contains("type PathCapability = :: hdm :: path :: BatchNormalized"), "{text}");
}
