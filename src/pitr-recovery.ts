// placeholder: the PitrRecovery construct is being written (issue 2)
export {};
