// Times n2p2's nnp::Prediction::predict() -- neighbour list, symmetry functions and their
// derivatives, networks, forces -- on the first structure of input.data in the current folder
// (an n2p2 potential folder: input.nn, scaling.data, weight.*.data), called N times in one
// process after one untimed setup; the structure is restored before each call, untimed
// (predict() converts units and removes energy offsets in place).
//
// Prints one line: "predict_loop atoms=<n> calls=<N> best_ms=<x> mean_ms=<y>".
// Build: benchmarks/n2p2/build.sh (links n2p2's libnnp).  Usage: predict_loop [N=20]
#include "Prediction.h"
#include "Structure.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

int main(int argc, char** argv)
{
    int const calls = argc > 1 ? std::atoi(argv[1]) : 20;
    if (calls < 1) { std::fprintf(stderr, "predict_loop: N must be >= 1\n"); return 2; }
    std::ofstream log("predict_loop.log");
    nnp::Prediction prediction;
    prediction.log.writeToStdout = false;
    prediction.log.registerStreamPointer(&log);
    prediction.setup();
    prediction.readStructureFromFile("input.data");
    nnp::Structure const pristine = prediction.structure;
    std::vector<double> ms;
    for (int i = 0; i < calls; ++i)
    {
        prediction.structure = pristine;
        auto const start = std::chrono::steady_clock::now();
        prediction.predict();
        auto const stop = std::chrono::steady_clock::now();
        ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    }
    double mean = 0.0;
    for (double x : ms) mean += x / calls;
    std::printf("predict_loop atoms=%zu calls=%d best_ms=%.4f mean_ms=%.4f\n", pristine.numAtoms, calls,
                *std::min_element(ms.begin(), ms.end()), mean);
    return 0;
}
