fn main() -> std::process::ExitCode {
    aiops::cli::main()
}
