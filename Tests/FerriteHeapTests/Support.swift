@_exported import FerriteTestSupport

struct TestError: Error {}
