"""Test harness: throwaway Kafka broker and PostgreSQL cluster started on the loopback interface."""
