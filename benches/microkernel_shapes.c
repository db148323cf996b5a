// The ceiling of AVX-512 f32 GEMM micro-kernel shapes on this CPU, for choosing hdm's next
// kernel (DEVELOPERS.md, thirteenth session). Each kernel keeps one FMA chain per element of its
// MR x (16 * NV) tile over a packed depth of 256 (hdm's kc), broadcasting MR values of A and
// loading NV vectors of B per step; the loop runs it as the packed GEMM's inner loops do (one
// B panel across mc rows of A, then the next panel). Not part of any build or test.
//
//     gcc -O3 -march=native benches/microkernel_shapes.c -o /tmp/shapes && taskset -c 0 /tmp/shapes
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define KC 256
#define KERNEL(NAME, MR, NV)                                                                     \
    __attribute__((noinline)) void NAME(const float *restrict a, const float *restrict b,       \
                                        float *restrict c, long ldc) {                            \
        __m512 ab[MR][NV];                                                                       \
        for (int i = 0; i < MR; i++)                                                             \
            for (int v = 0; v < NV; v++) ab[i][v] = _mm512_setzero_ps();                         \
        for (int p = 0; p < KC; p++) {                                                           \
            __m512 bv[NV];                                                                       \
            for (int v = 0; v < NV; v++) bv[v] = _mm512_load_ps(b + p * 16 * NV + 16 * v);       \
            for (int i = 0; i < MR; i++) {                                                       \
                __m512 av = _mm512_set1_ps(a[p * MR + i]);                                       \
                for (int v = 0; v < NV; v++) ab[i][v] = _mm512_fmadd_ps(av, bv[v], ab[i][v]);    \
            }                                                                                    \
        }                                                                                        \
        for (int i = 0; i < MR; i++)                                                             \
            for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + i * ldc + 16 * v, ab[i][v]);       \
    }

KERNEL(k16x16, 16, 1) // hdm's (matrixmultiply's) avx512f kernel: 17 loads per 16 FMAs
KERNEL(k8x48, 8, 3)
KERNEL(k12x32, 12, 2)
KERNEL(k14x32, 14, 2)
KERNEL(k6x64, 6, 4)

typedef void (*kernel)(const float *, const float *, float *, long);

static void run(const char *name, kernel f, int mr, int nr, int mc) {
    int nc = 1008 / nr * nr;
    float *a = aligned_alloc(64, sizeof(float) * KC * mc);
    float *b = aligned_alloc(64, sizeof(float) * KC * nc);
    float *c = aligned_alloc(64, sizeof(float) * mc * nc);
    for (long i = 0; i < (long)KC * mc; i++) a[i] = (i % 7) * 0.1f;
    for (long i = 0; i < (long)KC * nc; i++) b[i] = (i % 5) * 0.1f;
    double best = 1e9;
    for (int rep = 0; rep < 50; rep++) {
        double t = now();
        for (int jr = 0; jr < nc; jr += nr)
            for (int ir = 0; ir < mc; ir += mr) f(a + ir * KC, b + jr * KC, c + ir * nc + jr, nc);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("%-6s mc=%-3d nc=%-4d %6.1f GFLOP/s\n", name, mc, nc, 2.0 * KC * mc * nc / best / 1e9);
    free(a);
    free(b);
    free(c);
}

int main(void) {
    for (int round = 0; round < 2; round++) {
        run("16x16", k16x16, 16, 16, 64);
        run("8x48", k8x48, 8, 48, 64);
        run("12x32", k12x32, 12, 32, 96);
        run("14x32", k14x32, 14, 32, 112);
        run("6x64", k6x64, 6, 64, 48);
    }
    return 0;
}
