// graphc's CUDA simulator runtime: force-included (g++ -include) before rendered CUDA C, so the
// very source nvcc would get compiles as host C++ (runtime/cuda/sim.py drives it).
//
// A block's threads run one after another on the calling host thread. A kernel without
// __syncthreads runs each thread as a plain call; one with barriers runs each thread as a fiber
// that yields to the scheduler at __syncthreads, and the scheduler resumes the fibers
// round-robin, so every thread reaches barrier k before any thread passes it. Blocks run one
// after another, which is why `__shared__` can be a `static`: one block's shared memory is all
// there is at any time.
//
// A fault in the kernel (sim.py puts inaccessible pages around every allocation and unmaps freed
// ones) comes back as an error naming the thread and block, like CUDA's illegal memory access.
//
// What this proves: indexing, bounds, barrier placement and shared-memory use of the generated
// source, for any grid and block shape. What it cannot: timing, coalescing, bank conflicts,
// warp-synchronous behaviour (shuffles, votes) and races between blocks (blocks never overlap).
#ifndef GRAPHC_SIM_RUNTIME_H
#define GRAPHC_SIM_RUNTIME_H

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
// shared variables live in one section, which the scheduler fills with 0xFF before every block:
// CUDA's shared memory starts undefined, so a kernel reading it before writing sees garbage
// here too (NaN, -1) instead of zeros or the previous block's values
#define __shared__ static __attribute__((section("gc_shared"), used))
#define __constant__ static
#define __launch_bounds__(...)

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// set by the scheduler before each thread (fiber) runs; external linkage, so the compiler reloads
// them after every opaque call such as the _setjmp inside __syncthreads
uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

// ---- CUDA math that glibc lacks (the rest comes from <math.h>) ----
__device__ __forceinline__ float rsqrtf(float x) { return 1.0f / sqrtf(x); }
__device__ __forceinline__ double rsqrt(double x) { return 1.0 / sqrt(x); }
#define GC_MINMAX(T) \
    __device__ __forceinline__ T min(T a, T b) { return a < b ? a : b; } \
    __device__ __forceinline__ T max(T a, T b) { return a > b ? a : b; }
GC_MINMAX(int)
GC_MINMAX(unsigned int)
GC_MINMAX(long)
GC_MINMAX(unsigned long)
GC_MINMAX(long long)
GC_MINMAX(unsigned long long)
#undef GC_MINMAX
__device__ __forceinline__ float min(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ float max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double min(double a, double b) { return fmin(a, b); }
__device__ __forceinline__ double max(double a, double b) { return fmax(a, b); }
template <class T> __device__ __forceinline__ T __ldg(const T* p) { return *p; }
// blocks and threads never overlap, so a read-modify-write is atomic as written
template <class T> __device__ __forceinline__ T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
template <class T> __device__ __forceinline__ T atomicMax(T* p, T v) { T old = *p; *p = old > v ? old : v; return old; }
template <class T> __device__ __forceinline__ T atomicMin(T* p, T v) { T old = *p; *p = old < v ? old : v; return old; }
template <class T> __device__ __forceinline__ T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }
__device__ __forceinline__ void __threadfence() {}

// ---- the scheduler ----
namespace gc_sim {

// sim.py defines GC_SIM_MAX_ARGS as the module's largest parameter count: each count up to it
// instantiates a call, which costs compile time
#ifndef GC_SIM_MAX_ARGS
#define GC_SIM_MAX_ARGS 64
#endif
enum { MAX_ARGS = GC_SIM_MAX_ARGS, MAX_THREADS = 1024, STACK_STRIDE = 256 << 10, GUARD_BYTES = 4096 };

static void* fn;                 // the kernel being launched
static int nargs;
static void** args;
static bool fibers;              // this launch runs threads as fibers
static int current;              // the fiber running now
// Switches are _setjmp/_longjmp, not swapcontext: glibc's swapcontext saves and restores the
// signal mask, a system call per switch (~330 ns a round trip against ~13 ns), and a block of
// 256 threads with 11 barriers switches 6000 times. ucontext only gives each fiber its stack,
// once per launch (start_fibers); a fiber parks at the top of worker_main between threads.
static jmp_buf scheduler;
static jmp_buf contexts[MAX_THREADS];
static bool finished[MAX_THREADS];
// fiber stacks come from one pool that sim.py maps once per process (STACK_STRIDE bytes per
// thread, the lowest GUARD_BYTES of each inaccessible, so an overflow faults instead of
// corrupting a neighbour), shared by every module and reused by every block and launch
static char* stacks;
static char error[256];

// call fn with nargs pointers: every rendered kernel parameter is a pointer, and a pointer
// parameter's type does not change how it is passed
template <size_t... I>
static void call_with(void** a, std::index_sequence<I...>) {
    using Kernel = void (*)(decltype((void)I, (void*)nullptr)...);
    reinterpret_cast<Kernel>(fn)(a[I]...);
}
template <size_t... N>
static void call_kernel(std::index_sequence<N...>) {
    ((nargs == (int)N ? (call_with(args, std::make_index_sequence<N>{}), 0) : 0), ...);
}
static void run_thread() { call_kernel(std::make_index_sequence<MAX_ARGS + 1>{}); }

static void set_thread(int t) {
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}

// Resume fiber t (parked between threads, or waiting at a barrier) until it yields again.
static void resume(int t) {
    if (!_setjmp(scheduler)) _longjmp(contexts[t], 1);
}

// Park the running fiber and go back to the scheduler. Out of line so that the _setjmp (which
// returns twice) never lands in a kernel's body, where it would make g++ spill its registers.
static __attribute__((noinline)) void yield() {
    if (!_setjmp(contexts[current])) _longjmp(scheduler, 1);
}

// A fiber's whole life: park, run the thread the scheduler resumes it for, park again. It never
// returns (ucontext would need uc_link, and its switch back costs the signal-mask call again).
static void worker_main(int t) {
    for (;;) {
        if (!_setjmp(contexts[t])) _longjmp(scheduler, 1);
        run_thread();
        finished[current] = true;
    }
}

// Put a parked fiber on each of the first n stacks. Once per launch, not once per process: every
// module has its own copy of this state over the one shared pool, so another module's launch
// (or a fault that abandoned a fiber mid-thread) leaves these stacks holding someone else's frames.
static void start_fibers(int n) {
    for (int t = 0; t < n; ++t) {
        ucontext_t start;
        getcontext(&start);
        start.uc_stack.ss_sp = stacks + (size_t)t * STACK_STRIDE + GUARD_BYTES;
        start.uc_stack.ss_size = STACK_STRIDE - GUARD_BYTES;
        start.uc_link = nullptr;
        makecontext(&start, (void (*)())worker_main, 1, t);
        if (!_setjmp(scheduler)) setcontext(&start);    // the fiber parks and jumps back here
    }
}

static void run_block_as_fibers(int n) {
    for (int t = 0; t < n; ++t) finished[t] = false;
    for (int running = n; running > 0;) {      // one round: every live thread up to its next barrier
        running = 0;
        for (int t = 0; t < n; ++t) {
            if (finished[t]) continue;
            current = t;
            set_thread(t);
            resume(t);
            running += !finished[t];
        }
    }
}

extern "C" char __start_gc_shared[] __attribute__((weak));   // set by the linker when
extern "C" char __stop_gc_shared[] __attribute__((weak));    // the module has shared variables

static void poison_shared() {
    if (__start_gc_shared != nullptr && __stop_gc_shared > __start_gc_shared)
        memset(__start_gc_shared, 0xFF, (size_t)(__stop_gc_shared - __start_gc_shared));
}

// An illegal access (sim.py maps each allocation between inaccessible pages and unmaps it when
// freed) raises SIGSEGV in the kernel; while a launch runs, the handler jumps back to gc_sim_run,
// which reports it like CUDA's "illegal memory access" instead of the process dying.
static sigjmp_buf fault_jump;
static pthread_t launching;
static struct sigaction previous[3];
static const int caught[3] = {SIGSEGV, SIGBUS, SIGFPE};
static char alt_stack[64 << 10];   // the handler's stack: the fault may be a fiber stack overflow
static void* fault_address;

static void on_fault(int sig, siginfo_t* info, void*) {
    if (!pthread_equal(pthread_self(), launching)) {
        // another thread's fault: give the signal back to whoever handled it before; the
        // instruction runs again and faults into that handler
        for (int i = 0; i < 3; ++i)
            if (caught[i] == sig) sigaction(sig, &previous[i], nullptr);
        return;
    }
    fault_address = info->si_addr;
    snprintf(error, sizeof error, "%s at address %p in thread (%u, %u, %u) of block (%u, %u, %u)",
             sig == SIGFPE ? "arithmetic fault (an integer division by zero?)" : "illegal memory access",
             info->si_addr, threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z);
    siglongjmp(fault_jump, 1);
}

struct FaultGuard {              // the handler and its stack for one launch, then the previous ones
    stack_t old_stack;
    FaultGuard() {
        launching = pthread_self();
        stack_t ss = {};
        ss.ss_sp = alt_stack;
        ss.ss_size = sizeof alt_stack;
        sigaltstack(&ss, &old_stack);
        struct sigaction sa = {};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 3; ++i) sigaction(caught[i], &sa, &previous[i]);
    }
    ~FaultGuard() {
        for (int i = 0; i < 3; ++i) sigaction(caught[i], &previous[i], nullptr);
        sigaltstack(&old_stack, nullptr);
    }
};

}  // namespace gc_sim

__device__ inline void __syncthreads() {
    if (!gc_sim::fibers) {       // sim.py chose plain calls for a kernel it thought had no barrier
        snprintf(gc_sim::error, sizeof gc_sim::error, "__syncthreads in a launch run without fibers");
        return;
    }
    gc_sim::yield();
}

// Run fn over the grid; 0 on success, else nonzero with gc_sim_error() saying why. fiber_stacks:
// NULL for a kernel without __syncthreads (plain calls), else the pool, with room for the block.
extern "C" int gc_sim_run(void* fn, int nargs, void** args, int gx, int gy, int gz, int bx, int by, int bz,
                          char* fiber_stacks) {
    using namespace gc_sim;
    error[0] = 0;
    if (nargs < 0 || nargs > MAX_ARGS) {
        snprintf(error, sizeof error, "%d kernel arguments (the simulator passes at most %d)", nargs, MAX_ARGS);
        return 1;
    }
    long long threads = (long long)bx * by * bz;
    if (bx < 1 || by < 1 || bz < 1 || bx > 1024 || by > 1024 || bz > 64 || threads > MAX_THREADS) {
        snprintf(error, sizeof error, "block (%d, %d, %d): each extent at least 1, at most (1024, 1024, 64) "
                 "and %d threads in all", bx, by, bz, MAX_THREADS);
        return 2;
    }
    if (gx < 1 || gy < 1 || gz < 1 || gy > 65535 || gz > 65535) {
        snprintf(error, sizeof error, "grid (%d, %d, %d): each extent at least 1, y and z at most 65535",
                 gx, gy, gz);
        return 3;
    }
    gc_sim::fn = fn;
    gc_sim::nargs = nargs;
    gc_sim::args = args;
    stacks = fiber_stacks;
    fibers = fiber_stacks != nullptr;
    gridDim = dim3(gx, gy, gz);
    blockDim = dim3(bx, by, bz);
    FaultGuard guard;
    if (sigsetjmp(fault_jump, 1)) return 6;     // on_fault wrote the message
    if (fibers) start_fibers((int)threads);
    for (int z = 0; z < gz; ++z)
        for (int y = 0; y < gy; ++y)
            for (int x = 0; x < gx; ++x) {
                blockIdx.x = x; blockIdx.y = y; blockIdx.z = z;
                poison_shared();
                if (fibers) {
                    run_block_as_fibers((int)threads);
                } else {
                    for (int t = 0; t < (int)threads; ++t) {
                        set_thread(t);
                        run_thread();
                    }
                }
                if (error[0]) return 5;
            }
    return 0;
}

extern "C" const char* gc_sim_error(void) { return gc_sim::error; }
extern "C" void* gc_sim_fault_address(void) { return gc_sim::fault_address; }

#endif
