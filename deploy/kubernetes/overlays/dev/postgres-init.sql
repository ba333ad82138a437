-- One database per service: the orchestrator and each participant keep their own state.
CREATE DATABASE saga_orchestrator;
CREATE DATABASE saga_account;
CREATE DATABASE saga_order;
CREATE DATABASE saga_inventory;
