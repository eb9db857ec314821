/* W0: FMA peak of this machine, the compute lower bound of every workload.
 * Build: gcc -O3 -march=native -fopenmp bench/fma_peak.c -o fma_peak
 * Run:   OMP_NUM_THREADS=2 ./fma_peak [repeats]
 * Each thread runs ACC independent vector FMA chains (enough to cover the FMA latency times
 * the FMA ports) on the widest vectors -march=native gives; FLOP = 2 per lane per FMA.
 * Prints one JSON line: median and best GFLOP/s over the repeats (after one warm-up). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
#define ACC 16
#define ITERS 20000000L

typedef float vec __attribute__((vector_size(LANES * 4)));

static int cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static float chains(long iters, float seed) {
  vec acc[ACC], m, a;
  for (int l = 0; l < LANES; l++) { m[l] = 0.999999f; a[l] = 1e-7f * seed; }
  for (int k = 0; k < ACC; k++)
    for (int l = 0; l < LANES; l++) acc[k][l] = seed + k + l;
  for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
    for (int k = 0; k < ACC; k++) acc[k] = acc[k] * m + a;
  }
  float s = 0;
  for (int k = 0; k < ACC; k++)
    for (int l = 0; l < LANES; l++) s += acc[k][l];
  return s;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 10;
  if (reps < 1) reps = 1;
  double *t = malloc(sizeof(double) * reps);
  volatile float sink = 0;
  int threads = omp_get_max_threads();
  for (int r = -1; r < reps; r++) {
    double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    sink += chains(ITERS / 4, 1.0f + omp_get_thread_num());
    double dt = omp_get_wtime() - t0;
    if (r >= 0) t[r] = dt;
  }
  qsort(t, reps, sizeof(double), cmp);
  double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
  double flop = 2.0 * LANES * ACC * (double)(ITERS / 4) * threads;
  printf("{\"threads\": %d, \"lanes\": %d, \"repeats\": %d, \"median_gflops\": %.5g, "
         "\"best_gflops\": %.5g, \"worst_gflops\": %.5g, \"checksum\": %.6g}\n",
         threads, LANES, reps, flop / med / 1e9, flop / t[0] / 1e9, flop / t[reps - 1] / 1e9,
         (double)sink);
  free(t);
  return 0;
}
