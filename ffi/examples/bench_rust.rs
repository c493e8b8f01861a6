//! Sandbox create through the C ABI vs the Rust API, measured in one process (`make bench-c`).
//!
//! Usage: `bench_rust <path of libpodnet.so> [count]`, as root in a throwaway netns (the Makefile
//! does both). The C side is the real shared library, loaded with `dlopen` and called through
//! the exported functions exactly as a C program calls them; the Rust side is
//! `podnet::blocking::Node`. Two handles on the same node; each round creates one sandbox per
//! side (the order flips every round) and deletes both, so both sides see the same kernel, the
//! same node size and the same background load. Each timed create is what a caller does per
//! pod: build the spec, create, free the results. Then both read one record back many times
//! (`get`): that isolates the boundary's own cost from the kernel's noise. Prints one JSON line;
//! `BENCH_SAMPLES=file` also writes the create samples ("c_us rust_us" per round).

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::time::Instant;

use podnet_core::blocking::Node;
use podnet_core::{NodeConfig, SandboxSpec};

const NODE: &str = "bench";
const CIDR: &str = "10.240.0.0/16";
const WARMUP: usize = 5;
const GETS: usize = 2000;

type Obj = *mut c_void;
type Err = *mut *mut c_void;

// Signatures as in include/podnet.h (every object pointer is opaque here).
type NewFn = unsafe extern "C" fn(*const c_char, *mut Obj, Err) -> u32;
type SetStrFn = unsafe extern "C" fn(Obj, *const c_char, Err) -> u32;
type FreeFn = unsafe extern "C" fn(Obj);
type OpenFn = unsafe extern "C" fn(Obj, *mut Obj, Err) -> u32;
type CreateFn = unsafe extern "C" fn(Obj, Obj, *mut Obj, Err) -> u32;
type GetFn = unsafe extern "C" fn(Obj, *const c_char, *mut Obj, Err) -> u32;

/// The exported functions the benchmark calls.
struct CApi {
    config_new: NewFn,
    config_add_pod_cidr: SetStrFn,
    config_free: FreeFn,
    node_open: OpenFn,
    node_free: FreeFn,
    spec_new: NewFn,
    spec_free: FreeFn,
    sandbox_create: CreateFn,
    sandbox_get: GetFn,
    sandbox_delete: SetStrFn,
    sandbox_free: FreeFn,
}

macro_rules! sym {
    ($lib:expr, $name:literal, $ty:ty) => {{
        // SAFETY: `$lib` is a live handle from dlopen and the name is NUL-terminated.
        let p = unsafe { libc::dlsym($lib, concat!($name, "\0").as_ptr().cast()) };
        assert!(!p.is_null(), "{} not exported", $name);
        // SAFETY: the symbol is the exported function of that name, whose C signature
        // (include/podnet.h) is `$ty`: same arguments, same return type.
        unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
    }};
}

impl CApi {
    fn load(path: &str) -> CApi {
        let c_path = CString::new(path).expect("path");
        // SAFETY: a NUL-terminated path; loading libpodnet runs no constructors of concern.
        let lib = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            // SAFETY: dlerror returns a NUL-terminated message after a failed dlopen.
            let msg = unsafe { CStr::from_ptr(libc::dlerror()) };
            panic!("dlopen {path}: {}", msg.to_string_lossy());
        }
        CApi {
            config_new: sym!(lib, "podnet_node_config_new", NewFn),
            config_add_pod_cidr: sym!(lib, "podnet_node_config_add_pod_cidr", SetStrFn),
            config_free: sym!(lib, "podnet_node_config_free", FreeFn),
            node_open: sym!(lib, "podnet_node_open", OpenFn),
            node_free: sym!(lib, "podnet_node_free", FreeFn),
            spec_new: sym!(lib, "podnet_sandbox_spec_new", NewFn),
            spec_free: sym!(lib, "podnet_sandbox_spec_free", FreeFn),
            sandbox_create: sym!(lib, "podnet_node_sandbox_create", CreateFn),
            sandbox_get: sym!(lib, "podnet_node_sandbox_get", GetFn),
            sandbox_delete: sym!(lib, "podnet_node_sandbox_delete", SetStrFn),
            sandbox_free: sym!(lib, "podnet_sandbox_free", FreeFn),
        }
    }
}

fn ok(what: &str, status: u32) {
    assert_eq!(status, 0, "{what}: status {status}");
}

/// The C side: a node handle and the library's functions.
struct CNode {
    api: CApi,
    node: Obj,
}

impl CNode {
    fn open(api: CApi) -> CNode {
        let (name, cidr) = (CString::new(NODE).unwrap(), CString::new(CIDR).unwrap());
        let (mut cfg, mut node) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: valid strings and out-pointers; cfg is used only after a successful new.
        unsafe {
            ok("config", (api.config_new)(name.as_ptr(), &mut cfg, ptr::null_mut()));
            ok("cidr", (api.config_add_pod_cidr)(cfg, cidr.as_ptr(), ptr::null_mut()));
            ok("open", (api.node_open)(cfg, &mut node, ptr::null_mut()));
            (api.config_free)(cfg);
        }
        CNode { api, node }
    }

    fn create(&self, id: &CStr) -> f64 {
        let t0 = Instant::now();
        let (mut spec, mut sb) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: `self.node` is open; spec and sandbox are freed exactly once.
        unsafe {
            ok("spec", (self.api.spec_new)(id.as_ptr(), &mut spec, ptr::null_mut()));
            ok("create", (self.api.sandbox_create)(self.node, spec, &mut sb, ptr::null_mut()));
            (self.api.sandbox_free)(sb);
            (self.api.spec_free)(spec);
        }
        t0.elapsed().as_secs_f64() * 1e6
    }

    fn get(&self, id: &CStr) -> f64 {
        let t0 = Instant::now();
        let mut sb = ptr::null_mut();
        // SAFETY: `self.node` is open; the sandbox is freed once.
        unsafe {
            ok("get", (self.api.sandbox_get)(self.node, id.as_ptr(), &mut sb, ptr::null_mut()));
            (self.api.sandbox_free)(sb);
        }
        t0.elapsed().as_secs_f64() * 1e6
    }

    fn delete(&self, id: &CStr) {
        // SAFETY: `self.node` is open.
        ok("delete", unsafe { (self.api.sandbox_delete)(self.node, id.as_ptr(), ptr::null_mut()) });
    }
}

impl Drop for CNode {
    fn drop(&mut self) {
        // SAFETY: the node is freed once, after every call on it returned.
        unsafe { (self.api.node_free)(self.node) }
    }
}

fn rust_create(node: &Node, id: &str) -> f64 {
    let t0 = Instant::now();
    let spec = SandboxSpec::new(id);
    let sb = node.create_sandbox(&spec).unwrap_or_else(|e| panic!("create {id}: {e}"));
    drop(sb);
    drop(spec);
    t0.elapsed().as_secs_f64() * 1e6
}

fn p50(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lib = args.next().expect("usage: bench_rust <libpodnet.so> [count]");
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let c = CNode::open(CApi::load(&lib));
    let r =
        Node::open(NodeConfig::new(NODE).pod_cidr(CIDR.parse().expect("CIDR"))).unwrap_or_else(|e| panic!("open: {e}"));
    for i in 0..WARMUP {
        let (cid, rid) = (CString::new(format!("warm-c-{i}")).unwrap(), format!("warm-r-{i}"));
        c.create(&cid);
        rust_create(&r, &rid);
        c.delete(&cid);
        r.delete_sandbox(&rid).unwrap_or_else(|e| panic!("delete: {e}"));
    }
    // Steady state: pods do not accumulate (create latency grows with the pod count, and p50
    // would mostly measure where in that growth the median falls).
    let (mut c_us, mut r_us) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for i in 0..count {
        let (cid, rid) = (CString::new(format!("c-{i}")).unwrap(), format!("r-{i}"));
        if i % 2 == 0 {
            c_us.push(c.create(&cid));
            r_us.push(rust_create(&r, &rid));
        } else {
            r_us.push(rust_create(&r, &rid));
            c_us.push(c.create(&cid));
        }
        c.delete(&cid);
        r.delete_sandbox(&rid).unwrap_or_else(|e| panic!("delete {rid}: {e}"));
    }
    let probe = CString::new("probe").unwrap();
    c.create(&probe);
    let (mut cg_us, mut rg_us) = (Vec::with_capacity(GETS), Vec::with_capacity(GETS));
    for _ in 0..GETS {
        cg_us.push(c.get(&probe));
        let t0 = Instant::now();
        drop(r.get_sandbox("probe").unwrap_or_else(|e| panic!("get: {e}")));
        rg_us.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    c.delete(&probe);
    drop(c);
    drop(r);
    if let Ok(path) = std::env::var("BENCH_SAMPLES") {
        let lines: Vec<String> = c_us.iter().zip(&r_us).map(|(c, r)| format!("{c:.1} {r:.1}\n")).collect();
        std::fs::write(path, lines.concat()).expect("write samples");
    }
    // The per-round ratio shares each round's conditions: the most robust figure here.
    let mut pairs: Vec<f64> = c_us.iter().zip(&r_us).map(|(c, r)| c / r).collect();
    let (cp, rp, pair) = (p50(&mut c_us), p50(&mut r_us), p50(&mut pairs));
    let (cg, rg) = (p50(&mut cg_us), p50(&mut rg_us));
    println!(
        "{{\"create_p50_us_c\":{cp:.1},\"create_p50_us_rust\":{rp:.1},\"ratio\":{:.4},\"pair_ratio_p50\":{pair:.4},\
         \"count\":{count},\"get_p50_us_c\":{cg:.1},\"get_p50_us_rust\":{rg:.1}}}",
        cp / rp
    );
}
