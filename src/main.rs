fn main() -> std::process::ExitCode {
    outwatch::cli::main()
}
