import FerriteMulticast
import Testing

@Suite struct WBAmcastSimulationTests {
    @Test func failureFreeRunsSatisfyEveryProperty() {
        for seed in UInt64(1)...50 {
            var simulator = Simulator<WBAmcastReplica>(options: SimulationOptions(seed: seed))
            let result = simulator.run()
            let violations = DeliveryChecker.check(result.record)
            #expect(result.finished, "seed \(seed) did not finish")
            #expect(violations.isEmpty, "seed \(seed): \(violations)")
        }
    }

    @Test func faultyRunsSatisfyEveryProperty() {
        for seed in UInt64(1)...50 {
            var simulator = Simulator<WBAmcastReplica>(options: .faulty(seed: seed))
            let result = simulator.run()
            let violations = DeliveryChecker.check(result.record)
            #expect(result.finished, "seed \(seed) did not finish at \(result.endedAt)")
            #expect(violations.isEmpty, "seed \(seed): \(violations)")
        }
    }
}
