/* W0: STREAM triad a = b + s*c on 2^25 float32, OpenMP.
 * Build: gcc -O3 -march=native -fopenmp bench/triad.c -o triad
 * Run:   OMP_NUM_THREADS=2 ./triad [repeats]
 * Prints one JSON line: median and best GB/s over the repeats (after one warm-up),
 * counting 12 bytes per element (two 4-byte reads, one 4-byte write), as STREAM does. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define N (1L << 25)

static int cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  if (reps < 1) reps = 1;
  float *a = aligned_alloc(64, N * sizeof(float));
  float *b = aligned_alloc(64, N * sizeof(float));
  float *c = aligned_alloc(64, N * sizeof(float));
  if (!a || !b || !c) { fprintf(stderr, "alloc failed\n"); return 1; }
  const float s = 3.0f;
#pragma omp parallel for schedule(static)
  for (long i = 0; i < N; i++) { a[i] = 0.0f; b[i] = 1.0f; c[i] = 2.0f; }

  double *t = malloc(sizeof(double) * reps);
  for (int r = -1; r < reps; r++) {
    double t0 = omp_get_wtime();
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < N; i++) a[i] = b[i] + s * c[i];
    double dt = omp_get_wtime() - t0;
    if (r >= 0) t[r] = dt;
  }
  double sum = 0; /* keep the result alive and check it */
  for (long i = 0; i < N; i += 4096) sum += a[i];
  int ok = a[0] == 7.0f && a[N - 1] == 7.0f;
  qsort(t, reps, sizeof(double), cmp);
  double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
  double bytes = 12.0 * (double)N;
  printf("{\"threads\": %d, \"n\": %ld, \"repeats\": %d, \"median_s\": %.6g, \"best_s\": %.6g, "
         "\"median_gbps\": %.4g, \"best_gbps\": %.4g, \"worst_gbps\": %.4g, \"ok\": %s, "
         "\"checksum\": %.6g}\n",
         omp_get_max_threads(), N, reps, med, t[0], bytes / med / 1e9, bytes / t[0] / 1e9,
         bytes / t[reps - 1] / 1e9,
         ok ? "true" : "false", sum);
  free(a); free(b); free(c); free(t);
  return ok ? 0 : 2;
}
